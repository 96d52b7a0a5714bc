"""Tests of trmgym.curiosity."""
