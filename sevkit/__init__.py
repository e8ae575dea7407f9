"""sevkit: the library behind the SEV/SEV-ES/SEV-SNP conformance suite.

It never imports pytest: suites/ and fixtures/ use it, and so does the ``sevkit`` CLI.
"""

__version__ = "0.1.0"
