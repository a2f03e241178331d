"""Everything that imports a web framework or server: one module (or package) per framework."""
