"""Graphs that ship with awe."""
