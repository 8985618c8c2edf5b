"""Data queries: a monitor or data manager questions a field, the site answers, the query is closed."""
