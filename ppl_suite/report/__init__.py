"""Reports read the results store only: tables from pandas, Markdown rendering."""
