pytest_plugins = ["xpnet.testing"]
