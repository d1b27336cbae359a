"""Single sign-on through a directory's identity provider (OpenID Connect), WorkOS SSO shaped."""
