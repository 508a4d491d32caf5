"""Test-time adaptation methods register in ``ADAPT`` on import."""
