"""The console's message tables, one module per language, each a key to its text."""
