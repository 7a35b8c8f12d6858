/* `gnnrec serve`: the HTTP inference server. */
#ifndef GNNREC_SERVER_SERVER_H
#define GNNREC_SERVER_SERVER_H

/* Runs the server until SIGTERM/SIGINT; argv[0] is "serve". Returns the process exit code. */
int srv_cmd_serve(int argc, char **argv);

#endif
