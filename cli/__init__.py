"""Command-line interface (click): thin commands over the ifadit and keyvault libraries."""
