#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
/* Fake IPVS table over the sockopt interface, read from $FAKE_IPVS:
 * S proto addr port sched flags timeout netmask  conns inpkts outpkts inbytes outbytes cps inpps outpps inbps outbps
 * D addr port conn_flags weight u l active inact persist  conns inpkts outpkts inbytes outbytes cps inpps outpps inbps outbps */
struct stats { uint32_t conns, inpkts, outpkts; uint64_t inbytes, outbytes; uint32_t cps, inpps, outpps, inbps, outbps; };
struct svc { uint16_t protocol; uint32_t addr; uint16_t port; uint32_t fwmark; char sched[16]; unsigned flags, timeout; uint32_t netmask; unsigned num_dests; struct stats st; };
struct dst { uint32_t addr; uint16_t port; unsigned conn_flags; int weight; uint32_t u, l, active, inact, persist; struct stats st; };
struct getdests { uint16_t protocol; uint32_t addr; uint16_t port; uint32_t fwmark; unsigned num_dests; struct dst e[]; };
static struct svc S[64]; static struct dst D[64][64]; static int ns, nd[64], loaded;
static void rdstats(char **p, struct stats *s) {
	s->conns = strtoul(*p, p, 10); s->inpkts = strtoul(*p, p, 10); s->outpkts = strtoul(*p, p, 10);
	s->inbytes = strtoull(*p, p, 10); s->outbytes = strtoull(*p, p, 10);
	s->cps = strtoul(*p, p, 10); s->inpps = strtoul(*p, p, 10); s->outpps = strtoul(*p, p, 10);
	s->inbps = strtoul(*p, p, 10); s->outbps = strtoul(*p, p, 10);
}
static void load(void) {
	if (loaded) return; loaded = 1;
	FILE *f = fopen(getenv("FAKE_IPVS"), "r"); char line[512], a[64], sched[16];
	if (!f) return;
	while (fgets(line, sizeof line, f)) {
		int n; char *p;
		if (line[0] == 'S') {
			struct svc *s = &S[ns++]; unsigned proto, port, flags, timeout; char mask[64];
			sscanf(line + 2, "%u %63s %u %15s %x %u %63s%n", &proto, a, &port, sched, &flags, &timeout, mask, &n);
			s->protocol = proto; inet_pton(AF_INET, a, &s->addr); s->port = htons(port); strcpy(s->sched, sched);
			s->flags = flags; s->timeout = timeout; inet_pton(AF_INET, mask, &s->netmask);
			p = line + 2 + n; rdstats(&p, &s->st);
		} else if (line[0] == 'D') {
			int i = ns - 1; struct dst *d = &D[i][nd[i]++]; unsigned port, cf, u, l, ac, ic, pc; int w;
			sscanf(line + 2, "%63s %u %u %d %u %u %u %u %u%n", a, &port, &cf, &w, &u, &l, &ac, &ic, &pc, &n);
			inet_pton(AF_INET, a, &d->addr); d->port = htons(port); d->conn_flags = cf; d->weight = w;
			d->u = u; d->l = l; d->active = ac; d->inact = ic; d->persist = pc;
			p = line + 2 + n; rdstats(&p, &d->st); S[i].num_dests = nd[i];
		}
	}
	fclose(f);
}
int getsockopt(int fd, int level, int name, void *val, socklen_t *len) {
	static int (*real)(int, int, int, void *, socklen_t *);
	if (level == 0 && name >= 1152 && name <= 1159) {
		load();
		switch (name) {
		case 1153: { uint32_t *p = val; p[0] = 0x010201; p[1] = 4096; p[2] = ns; return 0; }
		case 1154: { unsigned *n = val; *n = ns; memcpy((char *)val + 8, S, sizeof(struct svc) * ns); return 0; }
		case 1156: { struct getdests *g = val;
			for (int i = 0; i < ns; i++) if (S[i].addr == g->addr && S[i].port == g->port && S[i].protocol == g->protocol) {
				g->num_dests = nd[i]; memcpy(g->e, D[i], sizeof(struct dst) * nd[i]); return 0; }
			return -1; }
		case 1155: { struct svc *q = val;
			for (int i = 0; i < ns; i++) if (S[i].addr == q->addr && S[i].port == q->port && S[i].protocol == q->protocol) { *q = S[i]; return 0; }
			return -1; }
		case 1158: { int *p = val; p[0] = 900; p[1] = 120; p[2] = 300; return 0; }
		default: memset(val, 0, *len); return 0;
		}
	}
	if (!real) real = dlsym(RTLD_NEXT, "getsockopt");
	return real(fd, level, name, val, len);
}

/* -L -c reads /proc/net/ip_vs_conn: serve $FAKE_CONN instead. */
FILE *fopen(const char *path, const char *mode) {
	static FILE *(*real)(const char *, const char *);
	if (!real) real = dlsym(RTLD_NEXT, "fopen");
	if (strcmp(path, "/proc/net/ip_vs_conn") == 0 && getenv("FAKE_CONN"))
		return real(getenv("FAKE_CONN"), mode);
	return real(path, mode);
}
