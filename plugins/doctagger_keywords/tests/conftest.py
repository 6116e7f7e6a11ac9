# doctagger's test kit: the doctagger_index, doctagger_cli and doctagger_plugin fixtures.
pytest_plugins = ["doctagger.testing"]
