/*
 * vpp-fifo-harness: throughput of VPP's own C svm_fifo (libsvm.so from the
 * VPP 26.10 build in $VPP_DIR (default ../vpp-anchor beside the repository)), shaped like sapi-conformance's
 * benches/benches/fifo.rs "fifo" member:
 *
 *   - one memfd fifo segment (same ssvm_size as the Rust FifoRig:
 *     round_up_page(4 * 4 MiB + 16 MiB + 3 pages) = 32 MiB + 12 KiB), 1 slice;
 *   - one 4 MiB fifo, allocated with fifo_segment_alloc_fifo_w_slice, VPP
 *     default chunking (pct_first_alloc 0: first chunk 4 KiB, then grows by
 *     min_alloc = min(size/8, 64 KiB) = 64 KiB chunks, or one chunk as large as
 *     the write when a write needs more; the consumer's svm_fifo_dequeue
 *     unlinks consumed chunks and returns them to the segment's lock-free free
 *     lists, where the producer's next grow pops them again);
 *   - the same fifo reused for every size and run, as the Rust rig does;
 *   - producer = main thread pinned to CPU 0, consumer = a thread pinned to
 *     CPU 1 spawned per run; the clock starts after the spawn, stops at the
 *     consumer's last byte (the Rust bench's Instant pair);
 *   - writes/reads of W bytes via svm_fifo_enqueue / svm_fifo_dequeue, the
 *     consumer first checks svm_fifo_max_dequeue_cons (Rust: rx.is_empty());
 *   - Backoff as sapi_benches::Backoff: one pause per try for 64 tries, then
 *     sched_yield on every further try, reset on progress;
 *   - each side has its own svm_fifo_t private struct (the consumer's is
 *     fifo_segment_duplicate_fifo of the producer's), sharing only the
 *     segment's svm_fifo_shared_t - as VPP and an app in two processes do
 *     (the Rust bench's FifoProducer / FifoConsumer are separate too).
 *
 * Usage: harness [grow|first100] [runs] [target_seconds_per_run]
 *   grow     : VPP default (pct_first_alloc = 0)            [default]
 *   first100 : pct_first_alloc = 100: the fifo's first chunk is the whole
 *              4 MiB. VPP's fifo has no fixed-ring mode: positions only grow,
 *              so once the producer passes 4 MiB the fifo grows by chunks
 *              and the consumer frees the big one - steady state is the same
 *              chunk recycling as "grow"; only the very first 4 MiB differ.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include <vppinfra/mem.h>
#include <svm/fifo_segment.h>
#include <svm/svm_fifo.h>

#define FIFO_SIZE (4u << 20)
#define PAGE 4096ull

/* The copy routine svm_fifo multiarch-selected at load time (exported data
 * symbol of libsvm.so, declared by CLIB_MARCH_FN). */
extern void *svm_fifo_copy_to_chunk_selected;
extern void *svm_fifo_copy_from_chunk_selected;

/* ---- Backoff (sapi_benches::Backoff) ---- */
typedef struct
{
  unsigned n;
} backoff_t;

static inline void
snooze (backoff_t *b)
{
  if (b->n < 64)
    {
      __builtin_ia32_pause ();
      b->n++;
    }
  else
    sched_yield ();
}

static inline void
reset (backoff_t *b)
{
  b->n = 0;
}

static void
pin_to (int cpu)
{
  cpu_set_t set;
  CPU_ZERO (&set);
  CPU_SET (cpu, &set);
  int rv = pthread_setaffinity_np (pthread_self (), sizeof (set), &set);
  if (rv)
    {
      fprintf (stderr, "pthread_setaffinity_np(cpu %d) failed: %d\n", cpu,
	       rv);
      exit (1);
    }
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Position-dependent pattern for the verify run: byte p of the stream. */
static inline u8
pat (u64 p)
{
  u64 z = (p >> 3) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (u8) (z >> ((p & 7) * 8));
}

/* ---- one run ---- */
typedef struct
{
  svm_fifo_t *f; /* consumer's own svm_fifo_t */
  u8 *dst;
  u64 w, total;
  int verify;
  double end;
  u64 bad;	       /* verify: mismatching bytes */
  u64 first_bad;       /* verify: stream position of first mismatch */
  u64 unlinks;	       /* verify: times start_chunk moved (chunks freed) */
} consumer_t;

static void *
consumer_main (void *arg)
{
  consumer_t *c = arg;
  svm_fifo_t *f = c->f;
  u64 left = c->total, pos = 0;
  backoff_t wait = { 0 };
  fs_sptr_t start_chunk = f->shr->start_chunk;

  pin_to (1);
  while (left > 0)
    {
      if (svm_fifo_max_dequeue_cons (f) == 0)
	{
	  snooze (&wait);
	  continue;
	}
      u32 want = (u32) (left < c->w ? left : c->w);
      int n = svm_fifo_dequeue (f, want, c->dst);
      if (n > 0)
	{
	  if (PREDICT_FALSE (c->verify))
	    {
	      for (int i = 0; i < n; i++)
		if (c->dst[i] != pat (pos + i))
		  {
		    if (!c->bad)
		      c->first_bad = pos + i;
		    c->bad++;
		  }
	      if (f->shr->start_chunk != start_chunk)
		{
		  c->unlinks++;
		  start_chunk = f->shr->start_chunk;
		}
	    }
	  pos += n;
	  left -= n;
	  reset (&wait);
	}
      else if (n == SVM_FIFO_EEMPTY)
	snooze (&wait);
      else
	{
	  fprintf (stderr, "svm_fifo_dequeue: %d\n", n);
	  abort ();
	}
    }
  c->end = now_s ();
  return 0;
}

typedef struct
{
  double secs;
  u64 grows; /* verify: times end_chunk moved (chunks allocated) */
  u64 bad, first_bad, unlinks;
} run_result_t;

static run_result_t
run_once (svm_fifo_t *fp, svm_fifo_t *fc, u8 *src, u8 *dst, u64 w, u64 total,
	  int verify)
{
  consumer_t c = { .f = fc, .dst = dst, .w = w, .total = total,
		   .verify = verify };
  pthread_t th;
  run_result_t r = { 0 };
  u64 left = total, pos = 0;
  backoff_t wait = { 0 };
  fs_sptr_t end_chunk = fp->shr->end_chunk;

  if (pthread_create (&th, 0, consumer_main, &c))
    {
      perror ("pthread_create");
      exit (1);
    }
  double start = now_s ();
  while (left > 0)
    {
      u32 want = (u32) (left < w ? left : w);
      u32 done = 0;
      if (PREDICT_FALSE (verify))
	for (u32 i = 0; i < want; i++)
	  src[i] = pat (pos + i);
      while (done < want)
	{
	  int n = svm_fifo_enqueue (fp, want - done, src + done);
	  if (n > 0)
	    {
	      done += n;
	      reset (&wait);
	      if (PREDICT_FALSE (verify) && fp->shr->end_chunk != end_chunk)
		{
		  r.grows++;
		  end_chunk = fp->shr->end_chunk;
		}
	    }
	  else if (n == SVM_FIFO_EFULL || n == SVM_FIFO_EGROW)
	    snooze (&wait);
	  else
	    {
	      fprintf (stderr, "svm_fifo_enqueue: %d\n", n);
	      abort ();
	    }
	}
      pos += want;
      left -= want;
    }
  pthread_join (th, 0);
  r.secs = c.end - start;
  r.bad = c.bad;
  r.first_bad = c.first_bad;
  r.unlinks = c.unlinks;
  return r;
}

/* Page-aligned application buffer. mmap, not malloc: libvppinfra (built with
 * VPP_ALLOC_FREE_INTERCEPT) replaces malloc/aligned_alloc with its own heap. */
static u8 *
page_buf (u64 len)
{
  u64 sz = (len + PAGE - 1) & ~(PAGE - 1);
  void *p = mmap (0, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		  -1, 0);
  if (p == MAP_FAILED)
    {
      perror ("mmap");
      exit (1);
    }
  memset (p, 0, sz); /* fault it in */
  return p;
}

static void
page_buf_free (u8 *p, u64 len)
{
  munmap (p, (len + PAGE - 1) & ~(PAGE - 1));
}

static int
cmp_d (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
seg_stats (fifo_segment_t *fs, svm_fifo_t *f, const char *when)
{
  fifo_segment_header_t *fsh = fs->h;
  fifo_segment_slice_t *fss = &fsh->slices[0];
  printf ("  [%s] segment bytes carved %lu of %lu; chunks carved per class:",
	  when, (unsigned long) (fsh->byte_index - fsh->start_byte_index),
	  (unsigned long) (fsh->max_byte_index - fsh->start_byte_index));
  for (int i = 0; i < FS_CHUNK_VEC_LEN; i++)
    if (fss->num_chunks[i])
      printf (" %uKiB x%u", (4096u << i) >> 10, fss->num_chunks[i]);
  printf ("; on free lists %lu B; fifo n_chunks %u, bytes in fifo %u\n",
	  (unsigned long) fifo_segment_fl_chunk_bytes (fs),
	  svm_fifo_n_chunks (f), svm_fifo_max_dequeue (f));
}

static void
print_copy_impl (const char *what, void *fn)
{
  Dl_info info;
  char cmd[1024], line[512], best[256] = "?";
  if (!dladdr (fn, &info) || !info.dli_fname)
    {
      printf ("%s: %p (no dladdr)\n", what, fn);
      return;
    }
  unsigned long off = (unsigned long) ((u8 *) fn - (u8 *) info.dli_fbase);
  /* static (march variant) symbols are not in .dynsym; ask nm */
  snprintf (cmd, sizeof (cmd), "nm '%s' 2>/dev/null", info.dli_fname);
  FILE *p = popen (cmd, "r");
  if (p)
    {
      while (fgets (line, sizeof (line), p))
	{
	  unsigned long a;
	  char t, name[256];
	  if (sscanf (line, "%lx %c %255s", &a, &t, name) == 3 && a == off)
	    snprintf (best, sizeof (best), "%s", name);
	}
      pclose (p);
    }
  printf ("%s: %s (%s+0x%lx)\n", what, best, info.dli_fname, off);
}

int
main (int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "grow";
  int runs = argc > 2 ? atoi (argv[2]) : 5;
  double target = argc > 3 ? atof (argv[3]) : 0.7;
  static const struct
  {
    u64 w;
    const char *name;
  } sizes[] = { { 64, "64B" },
		{ 1 << 10, "1KiB" },
		{ 64 << 10, "64KiB" },
		{ 1 << 20, "1MiB" } };
  u8 pct_first_alloc;

  if (!strcmp (mode, "grow"))
    pct_first_alloc = 0;
  else if (!strcmp (mode, "first100"))
    pct_first_alloc = 100;
  else
    {
      fprintf (stderr, "usage: %s [grow|first100] [runs] [secs]\n", argv[0]);
      return 2;
    }
  if (runs < 1 || runs > 101)
    runs = 5;

  setvbuf (stdout, 0, _IOLBF, 0);
  pin_to (0);
  clib_mem_init (0, 64ULL << 20);

  fifo_segment_main_t sm = { 0 };
  fifo_segment_main_init (&sm, 0, 20);
  fifo_segment_create_args_t a = { 0 };
  a.segment_type = SSVM_SEGMENT_MEMFD;
  a.segment_name = "vpp-fifo-harness";
  /* = Rust app_segment_ssvm_size(4 * 4 MiB + 16 MiB) */
  a.segment_size = ((32ull << 20) + 3 * PAGE + PAGE - 1) & ~(PAGE - 1);
  int rv = fifo_segment_create (&sm, &a);
  if (rv)
    {
      fprintf (stderr, "fifo_segment_create: %d\n", rv);
      return 1;
    }
  fifo_segment_t *fs = fifo_segment_get_segment (&sm, a.new_segment_indices[0]);
  fs->h->pct_first_alloc = pct_first_alloc;

  svm_fifo_t *fp = fifo_segment_alloc_fifo_w_slice (fs, 0, FIFO_SIZE,
						    FIFO_SEGMENT_RX_FIFO);
  if (!fp)
    {
      fprintf (stderr, "fifo_segment_alloc_fifo_w_slice failed\n");
      return 1;
    }
  svm_fifo_t *fc = fifo_segment_duplicate_fifo (fs, fp);

  printf ("VPP svm_fifo harness: mode %s (pct_first_alloc %u), fifo %u B, "
	  "min_alloc %u, memfd segment %lu B, 1 slice; producer CPU 0, "
	  "consumer CPU 1; %d runs/size, target %.2fs/run\n",
	  mode, pct_first_alloc, fp->shr->size, fp->shr->min_alloc,
	  (unsigned long) a.segment_size, runs, target);
  print_copy_impl ("enqueue copy", svm_fifo_copy_to_chunk_selected);
  print_copy_impl ("dequeue copy", svm_fifo_copy_from_chunk_selected);
  seg_stats (fs, fp, "after alloc");

  for (unsigned s = 0; s < sizeof (sizes) / sizeof (sizes[0]); s++)
    {
      u64 w = sizes[s].w;
      u8 *src = page_buf (w), *dst = page_buf (w);

      /* 1. verify run: position-dependent pattern, checked byte by byte by
       * the consumer (untimed; also counts chunk grows / unlinks). */
      u64 vtotal = (128ull << 20) / w * w;
      run_result_t v = run_once (fp, fc, src, dst, w, vtotal, 1);
      printf ("  %s verify: %lu B moved, %s", sizes[s].name,
	      (unsigned long) vtotal, v.bad ? "MISMATCH" : "all bytes correct");
      if (v.bad)
	printf (" (%lu bad, first at stream byte %lu)", (unsigned long) v.bad,
		(unsigned long) v.first_bad);
      printf ("; producer grew the fifo %lu times, consumer freed chunks %lu "
	      "times\n",
	      (unsigned long) v.grows, (unsigned long) v.unlinks);
      if (v.bad)
	return 1;

      /* 2. timed runs: source filled once with sapi PageBuf::fill_pattern. */
      for (u64 i = 0; i < w; i++)
	src[i] = (u8) ((u8) (i * 13) ^ 0x5a);

      /* calibrate (doubles as warm-up) */
      u64 total = (16ull << 20) / w * w;
      if (!total)
	total = w;
      double t;
      for (;;)
	{
	  t = run_once (fp, fc, src, dst, w, total, 0).secs;
	  if (t >= 0.1)
	    break;
	  total *= 4;
	}
      total = (u64) (total * (target / t)) / w * w;
      if (total < w)
	total = w;

      double secs[101];
      for (int r = 0; r < runs; r++)
	secs[r] = run_once (fp, fc, src, dst, w, total, 0).secs;
      qsort (secs, runs, sizeof (double), cmp_d);
      double gib = (double) total / (double) (1ull << 30);
      double med = runs & 1 ? secs[runs / 2]
			    : (secs[runs / 2 - 1] + secs[runs / 2]) / 2;
      printf ("vpp_svm_fifo %s median %.2f GiB/s (min %.2f, max %.2f) %d runs"
	      " [%.3f GiB/run, median %.3fs]\n",
	      sizes[s].name, gib / med, gib / secs[runs - 1], gib / secs[0],
	      runs, gib, med);
      fflush (stdout);
      seg_stats (fs, fp, sizes[s].name);
      page_buf_free (src, w);
      page_buf_free (dst, w);
    }
  return 0;
}
