"""Users, roles, centres and the one permission layer shared by pages, API and exports."""
