"""doctagger: tag folders of PDFs with your own categories and entities."""
__version__ = "0.1.0"
