"""The study's report: one content model of blocks, rendered as HTML and Markdown."""
