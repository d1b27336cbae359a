"""LDAP and Active Directory over LDAP (python-ldap, C libldap)."""
