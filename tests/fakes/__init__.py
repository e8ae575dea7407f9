"""Fakes that implement the real protocols (style.md lesson 14)."""
