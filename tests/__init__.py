"""
The timecoin test suite (trial).
"""
