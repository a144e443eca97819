"""Report: chart style and palette, glue, tables and the chapters' shared displays."""
