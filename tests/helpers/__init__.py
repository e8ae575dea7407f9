"""Helpers shared by the self-tests (builders of synthetic inputs, readers of the real captures,
fakes). Test modules import from here, never from one another."""
