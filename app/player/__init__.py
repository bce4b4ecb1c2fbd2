"""Decode pipeline for the viewer (arrives with the player issue); no Qt, no engine imports."""
