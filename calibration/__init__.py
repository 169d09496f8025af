"""Activation statistics, SIBS keep-masks and MGS micro-gates, trained on top of the frozen detector."""
