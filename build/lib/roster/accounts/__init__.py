"""The application side: accounts and groups of the host application, following the directory."""
