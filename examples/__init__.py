"""Runnable examples: ``twistd -n streamweb --app examples.<name>:resource`` from the project
root (``examples/existing_service.tac`` runs with ``twistd -ny``)."""
