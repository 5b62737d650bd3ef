"""A module of the test site that fails as it is imported, as a site's module with a bug does."""

raise RuntimeError("this module is broken")
