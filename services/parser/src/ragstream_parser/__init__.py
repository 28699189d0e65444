"""The parser: Docling turns uploads into structure and chunks that keep headings and pages."""
