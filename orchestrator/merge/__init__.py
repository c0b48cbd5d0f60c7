"""Merge RESULTs into the TABLE (pandas), agreement and perplexity columns; merge RUNs of several machines."""
