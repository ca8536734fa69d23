/*
 * hog - allocate memory, fill it, verify it: the load of the swap test.
 *
 *	hog MiB [passes [seed]]
 *
 * Maps MiB of anonymous memory, writes every 8-byte word with a value
 * derived from its index and the seed, then reads every word back @passes
 * times (default 2), counting the words that differ.  Run in a memory
 * cgroup smaller than MiB, the pages go out to swap and come back, so a
 * swap device that loses or mixes up pages shows as bad words.
 *
 * The contents are chosen for the swap device, not for speed: no page is
 * same-filled (each holds pseudo-random words, so a store's same-page
 * shortcut is not what gets tested), yet pages compress moderately (three
 * words in four are a page number and a word offset), and no two pages are
 * equal (so a page written to the wrong slot is caught).
 *
 * Prints one line: the size, the passes and the count of bad words, plus
 * the first few mismatches.  Exit status: 0 all words correct, 1 some bad
 * word, 2 usage or allocation failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HOG_WORDS_PER_PAGE (4096 / sizeof(uint64_t))
#define HOG_MAX_REPORTED 10

/* splitmix64: a cheap, well-mixed function of one 64-bit value. */
static uint64_t hog_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The value of word @i.  Cannot fail. */
static uint64_t hog_value(uint64_t i, uint64_t seed)
{
	uint64_t page = i / HOG_WORDS_PER_PAGE, word = i % HOG_WORDS_PER_PAGE;

	if (word % 4 == 0)
		return hog_mix(seed ^ i);
	return (page << 16 | word) ^ (seed & 0xffff000000000000ULL);
}

static void hog_fill(uint64_t *w, uint64_t n, uint64_t seed)
{
	for (uint64_t i = 0; i < n; i++)
		w[i] = hog_value(i, seed);
}

/* Returns the count of bad words; reports the first few on stderr. */
static uint64_t hog_verify(const volatile uint64_t *w, uint64_t n,
			   uint64_t seed, int pass, uint64_t reported)
{
	uint64_t bad = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t got = w[i], want = hog_value(i, seed);

		if (got == want)
			continue;
		if (reported + bad < HOG_MAX_REPORTED)
			fprintf(stderr,
				"hog: pass %d: word %" PRIu64 " (page %" PRIu64
				") is %#" PRIx64 ", expected %#" PRIx64 "\n",
				pass, i, i / HOG_WORDS_PER_PAGE, got, want);
		bad++;
	}
	return bad;
}

static int hog_parse(const char *s, unsigned long long max,
		     unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end || *s == '-' || *out > max ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long long mib, passes = 2, seed = 0x5eed;
	uint64_t n, bad = 0;
	size_t len;
	uint64_t *w;

	if (argc < 2 || argc > 4 || hog_parse(argv[1], 1ULL << 30, &mib) ||
	    mib == 0 || (argc > 2 && hog_parse(argv[2], 1000, &passes)) ||
	    (argc > 3 && hog_parse(argv[3], UINT64_MAX, &seed))) {
		fprintf(stderr, "usage: hog MiB [passes [seed]]\n");
		return 2;
	}
	len = (size_t)mib << 20;
	n = len / sizeof(uint64_t);
	w = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED) {
		fprintf(stderr, "hog: mmap %llu MiB: %s\n", mib, strerror(errno));
		return 2;
	}
	/* Whole 4 KiB pages to swap, not transparent huge pages. */
	(void)madvise(w, len, MADV_NOHUGEPAGE);

	hog_fill(w, n, seed);
	/* The verifying reads must really load from memory. */
	__asm__ __volatile__("" : : "r"(w) : "memory");
	for (unsigned long long p = 1; p <= passes; p++)
		bad += hog_verify(w, n, seed, (int)p, bad);

	printf("hog: %llu MiB, %llu passes, %" PRIu64 " bad words\n",
	       mib, passes, bad);
	munmap(w, len);
	return bad ? 1 : 0;
}
