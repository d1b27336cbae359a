"""A demo directory: a generated company, served by a private OpenLDAP slapd on loopback."""
