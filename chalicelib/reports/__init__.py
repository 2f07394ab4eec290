"""Reports: queries, statistics and the dashboard over the warehouse."""
