"""Reports: dataset analysis, evaluation, comparison, figures."""
