"""medgan.report: the self-contained HTML evaluation report (``html.render_report``) and its figures (``plots``)."""
