"""Insights: cost forecasts and advice, prompt clusters and versions, trace replay."""
