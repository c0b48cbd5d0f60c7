"""Report: the TABLE's exporters (CSV, Markdown, JSON), report.html and its charts, merged-RUN pages."""
