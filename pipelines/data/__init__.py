"""Synthetic clinical datasets (readmission, sepsis) with knobs that inject real-world defects."""
