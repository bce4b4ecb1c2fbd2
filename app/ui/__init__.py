"""The PySide6 desktop application (arrives with the GUI issue); the only package importing Qt."""
