"""The report's sections, one module each: build(run) gives what its template part shows."""
