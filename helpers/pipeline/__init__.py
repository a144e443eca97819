"""Pipeline: run the numbered notebooks with papermill, build the book."""
