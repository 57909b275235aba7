"""The benchmark servers, one module per target; ``_common`` documents the routes they share."""
