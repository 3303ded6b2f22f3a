"""luzwidget."""
