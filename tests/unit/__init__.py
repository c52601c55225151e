"""Pure code and single processes: no network server, no Ray, no child process but the interpreter."""
