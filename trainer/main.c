/* gnnrec command-line entry point (placeholder until the CLI lands). */
#include <stdio.h>
int main(void)
{
    puts("gnnrec");
    return 0;
}
