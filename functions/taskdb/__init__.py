"""Database code shared by the API and the worker: the connection and every task query."""
