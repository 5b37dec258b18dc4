"""One running kubesim assembled (cluster), for tests (testing, the pytest plugin) and from
the command line (cli)."""
