/* Training progress: terminal bar or plain lines. */
#include "cli/progress.h"
#include "engine/clock.h"

#include <stdarg.h>
#include <unistd.h>

void cli_progress_init(cli_progress_t *p, FILE *out, long total_batches, int quiet)
{
    *p = (cli_progress_t){.out = out, .quiet = quiet, .total = total_batches};
    p->tty = !quiet && isatty(fileno(out));
    p->t_start = eng_now();
}

static void format_duration(char *buf, size_t n, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void cli_progress_batch(cli_progress_t *p, int epoch, int epochs, double loss)
{
    p->done++;
    if (!p->tty)
        return;
    double now = eng_now();
    if (now - p->t_drawn < 0.1 && p->done < p->total)
        return;
    p->t_drawn = now;
    double elapsed = now - p->t_start, rate = elapsed > 0 ? p->done / elapsed : 0;
    double frac = p->total ? (double)p->done / p->total : 1;
    char eta[32];
    format_duration(eta, sizeof eta, rate > 0 ? (p->total - p->done) / rate : 0);
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    int filled = (int)(frac * WIDTH);
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[WIDTH] = '\0';
    fprintf(p->out, "\r\033[Kepoch %d/%d [%s] %3.0f%% %.1f batch/s ETA %s loss %.4f", epoch, epochs,
            bar, 100 * frac, rate, eta, loss);
    fflush(p->out);
}

void cli_progress_line(cli_progress_t *p, const char *fmt, ...)
{
    if (p->quiet)
        return;
    if (p->tty)
        fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}
