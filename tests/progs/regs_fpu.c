/*
 * regs_fpu: the user registers and the extended FPU state, interrupted in
 * user space (not in a system call).
 *
 * One asm block, so that the compiler cannot touch the registers between
 * the load and the check:
 *  1. loads distinct patterns into the x87 stack (8 normal 80-bit values,
 *     st0..st7, all tags valid) with a non-default control word (round
 *     toward zero, 53-bit precision), MXCSR (round toward zero, FTZ, DAZ, a
 *     sticky flag), ymm0-15, or, with AVX-512F, zmm0-31 and k0-k7;
 *  2. writes READY with a raw write system call (which clobbers only rax,
 *     rcx and r11), so that the runner can only checkpoint after the load;
 *  3. loads patterns into rax, rbx, rcx, rdx, rsi, rdi, r8-r11 and r15
 *     (rcx and r11 are the ones a return through sysret would clobber);
 *  4. spins with pause on a flag that the SIGTERM handler sets (the
 *     handler's sigreturn gives back exactly the registers the restore
 *     put there);
 *  5. stores every register, then resets the control words for C.
 * r12, r13 and r14 hold the pointers the block works with.
 *
 * Also: the gs base (arch_prctl ARCH_SET_GS), which nothing else uses in
 * user space and a fresh process has at 0.
 */
#include "testlib.h"

#include <asm/prctl.h>
#include <stddef.h>
#include <sys/syscall.h>

#define OFF_VEC 128
#define OFF_K 2176
#define OFF_X87 2240
#define OFF_FCW 2368
#define OFF_MXCSR 2372
#define OFF_FCW_DEF 2376
#define OFF_MXCSR_DEF 2380
#define OFF_MSG 2384
#define OFF_MSGLEN 2392

#define S_(x) #x
#define S(x) S_(x)

/* order of the general registers in gp[] */
static const char *gp_names[] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi",
				  "r8",  "r9",  "r10", "r11", "r15" };
#define NGP 11

struct regs {
	uint64_t gp[16];
	uint8_t vec[32][64];
	uint64_t k[8];
	uint8_t x87[8][16];
	uint16_t fcw, pad0;
	uint32_t mxcsr;
	uint16_t fcw_def, pad1;
	uint32_t mxcsr_def;
	const char *msg;
	uint64_t msglen;
} __attribute__((aligned(64)));

_Static_assert(offsetof(struct regs, vec) == OFF_VEC, "layout");
_Static_assert(offsetof(struct regs, k) == OFF_K, "layout");
_Static_assert(offsetof(struct regs, x87) == OFF_X87, "layout");
_Static_assert(offsetof(struct regs, fcw) == OFF_FCW, "layout");
_Static_assert(offsetof(struct regs, mxcsr) == OFF_MXCSR, "layout");
_Static_assert(offsetof(struct regs, fcw_def) == OFF_FCW_DEF, "layout");
_Static_assert(offsetof(struct regs, mxcsr_def) == OFF_MXCSR_DEF, "layout");
_Static_assert(offsetof(struct regs, msg) == OFF_MSG, "layout");
_Static_assert(offsetof(struct regs, msglen) == OFF_MSGLEN, "layout");

static struct regs in, out;

/* round toward zero (RC=11), 53-bit precision (PC=10), all exceptions masked */
#define FCW_TEST 0x0e7f
/* all exceptions masked, round toward zero, FTZ, DAZ, and the sticky IE flag */
#define MXCSR_TEST 0xffc1

/* ------------------------------------------------------------ asm pieces */

#define X87_LOAD                                         \
	"fninit\n\t"                                     \
	"fldcw " S(OFF_FCW) "(%%r12)\n\t"                \
	"fldt " S(OFF_X87) "+7*16(%%r12)\n\t"            \
	"fldt " S(OFF_X87) "+6*16(%%r12)\n\t"            \
	"fldt " S(OFF_X87) "+5*16(%%r12)\n\t"            \
	"fldt " S(OFF_X87) "+4*16(%%r12)\n\t"            \
	"fldt " S(OFF_X87) "+3*16(%%r12)\n\t"            \
	"fldt " S(OFF_X87) "+2*16(%%r12)\n\t"            \
	"fldt " S(OFF_X87) "+1*16(%%r12)\n\t"            \
	"fldt " S(OFF_X87) "+0*16(%%r12)\n\t"            \
	"ldmxcsr " S(OFF_MXCSR) "(%%r12)\n\t"

#define X87_STORE                                        \
	"fnstcw " S(OFF_FCW) "(%%r13)\n\t"               \
	"stmxcsr " S(OFF_MXCSR) "(%%r13)\n\t"            \
	"fstpt " S(OFF_X87) "+0*16(%%r13)\n\t"           \
	"fstpt " S(OFF_X87) "+1*16(%%r13)\n\t"           \
	"fstpt " S(OFF_X87) "+2*16(%%r13)\n\t"           \
	"fstpt " S(OFF_X87) "+3*16(%%r13)\n\t"           \
	"fstpt " S(OFF_X87) "+4*16(%%r13)\n\t"           \
	"fstpt " S(OFF_X87) "+5*16(%%r13)\n\t"           \
	"fstpt " S(OFF_X87) "+6*16(%%r13)\n\t"           \
	"fstpt " S(OFF_X87) "+7*16(%%r13)\n\t"           \
	"fldcw " S(OFF_FCW_DEF) "(%%r12)\n\t"            \
	"ldmxcsr " S(OFF_MXCSR_DEF) "(%%r12)\n\t"

/* write(1, msg, msglen): READY, once the vector and x87 state is loaded */
#define SAY_READY                                        \
	"mov $1, %%eax\n\t"                              \
	"mov $1, %%edi\n\t"                              \
	"mov " S(OFF_MSG) "(%%r12), %%rsi\n\t"           \
	"mov " S(OFF_MSGLEN) "(%%r12), %%rdx\n\t"        \
	"syscall\n\t"

#define GP_LOAD                                          \
	"mov 0*8(%%r12), %%rax\n\t"                      \
	"mov 1*8(%%r12), %%rbx\n\t"                      \
	"mov 2*8(%%r12), %%rcx\n\t"                      \
	"mov 3*8(%%r12), %%rdx\n\t"                      \
	"mov 4*8(%%r12), %%rsi\n\t"                      \
	"mov 5*8(%%r12), %%rdi\n\t"                      \
	"mov 6*8(%%r12), %%r8\n\t"                       \
	"mov 7*8(%%r12), %%r9\n\t"                       \
	"mov 8*8(%%r12), %%r10\n\t"                      \
	"mov 9*8(%%r12), %%r11\n\t"                      \
	"mov 10*8(%%r12), %%r15\n\t"

#define GP_STORE                                         \
	"mov %%rax, 0*8(%%r13)\n\t"                      \
	"mov %%rbx, 1*8(%%r13)\n\t"                      \
	"mov %%rcx, 2*8(%%r13)\n\t"                      \
	"mov %%rdx, 3*8(%%r13)\n\t"                      \
	"mov %%rsi, 4*8(%%r13)\n\t"                      \
	"mov %%rdi, 5*8(%%r13)\n\t"                      \
	"mov %%r8, 6*8(%%r13)\n\t"                       \
	"mov %%r9, 7*8(%%r13)\n\t"                       \
	"mov %%r10, 8*8(%%r13)\n\t"                      \
	"mov %%r11, 9*8(%%r13)\n\t"                      \
	"mov %%r15, 10*8(%%r13)\n\t"

/* spin until the SIGTERM handler sets the flag */
#define SPIN                                             \
	"1:\n\t"                                         \
	"pause\n\t"                                      \
	"cmpl $0, (%%r14)\n\t"                           \
	"je 1b\n\t"

#define VY(op, i, base) op " " S(OFF_VEC) "+" #i "*64(%%" base "), %%ymm" #i "\n\t"
#define VYS(op, i, base) op " %%ymm" #i ", " S(OFF_VEC) "+" #i "*64(%%" base ")\n\t"
#define VZ(op, i, base) op " " S(OFF_VEC) "+" #i "*64(%%" base "), %%zmm" #i "\n\t"
#define VZS(op, i, base) op " %%zmm" #i ", " S(OFF_VEC) "+" #i "*64(%%" base ")\n\t"
#define KL(op, i) op " " S(OFF_K) "+" #i "*8(%%r12), %%k" #i "\n\t"
#define KS(op, i) op " %%k" #i ", " S(OFF_K) "+" #i "*8(%%r13)\n\t"

#define Y16(M, op, b)                                                                          \
	M(op, 0, b) M(op, 1, b) M(op, 2, b) M(op, 3, b) M(op, 4, b) M(op, 5, b) M(op, 6, b)    \
	M(op, 7, b) M(op, 8, b) M(op, 9, b) M(op, 10, b) M(op, 11, b) M(op, 12, b)             \
	M(op, 13, b) M(op, 14, b) M(op, 15, b)
#define Z16HI(M, op, b)                                                                        \
	M(op, 16, b) M(op, 17, b) M(op, 18, b) M(op, 19, b) M(op, 20, b) M(op, 21, b)          \
	M(op, 22, b) M(op, 23, b) M(op, 24, b) M(op, 25, b) M(op, 26, b) M(op, 27, b)          \
	M(op, 28, b) M(op, 29, b) M(op, 30, b) M(op, 31, b)
#define K8(M, op) M(op, 0) M(op, 1) M(op, 2) M(op, 3) M(op, 4) M(op, 5) M(op, 6) M(op, 7)

#define GP_CLOBBERS "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r15"
#define X87_CLOBBERS "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)"
#define XMM_CLOBBERS                                                                           \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",        \
		"xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define XMM_HI_CLOBBERS                                                                        \
	"xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24",       \
		"xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"
#define K_CLOBBERS "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"

static void run_avx2(void)
{
	register struct regs *pin asm("r12") = &in;
	register struct regs *pout asm("r13") = &out;
	register volatile sig_atomic_t *flag asm("r14") = &got_sigterm;

	asm volatile(X87_LOAD Y16(VY, "vmovdqu", "r12") SAY_READY GP_LOAD SPIN GP_STORE
			     Y16(VYS, "vmovdqu", "r13") X87_STORE "vzeroupper\n\t"
		     :
		     : "r"(pin), "r"(pout), "r"(flag)
		     : GP_CLOBBERS, X87_CLOBBERS, XMM_CLOBBERS, "memory", "cc");
}

__attribute__((target("avx512f"))) static void run_avx512f(void)
{
	register struct regs *pin asm("r12") = &in;
	register struct regs *pout asm("r13") = &out;
	register volatile sig_atomic_t *flag asm("r14") = &got_sigterm;

	asm volatile(X87_LOAD Y16(VZ, "vmovdqu64", "r12") Z16HI(VZ, "vmovdqu64", "r12")
			     K8(KL, "kmovw") SAY_READY GP_LOAD SPIN GP_STORE
				     Y16(VZS, "vmovdqu64", "r13") Z16HI(VZS, "vmovdqu64", "r13")
					     K8(KS, "kmovw") X87_STORE "vzeroupper\n\t"
		     :
		     : "r"(pin), "r"(pout), "r"(flag)
		     : GP_CLOBBERS, X87_CLOBBERS, XMM_CLOBBERS, XMM_HI_CLOBBERS, K_CLOBBERS,
		       "memory", "cc");
}

__attribute__((target("avx512f,avx512bw"))) static void run_avx512bw(void)
{
	register struct regs *pin asm("r12") = &in;
	register struct regs *pout asm("r13") = &out;
	register volatile sig_atomic_t *flag asm("r14") = &got_sigterm;

	asm volatile(X87_LOAD Y16(VZ, "vmovdqu64", "r12") Z16HI(VZ, "vmovdqu64", "r12")
			     K8(KL, "kmovq") SAY_READY GP_LOAD SPIN GP_STORE
				     Y16(VZS, "vmovdqu64", "r13") Z16HI(VZS, "vmovdqu64", "r13")
					     K8(KS, "kmovq") X87_STORE "vzeroupper\n\t"
		     :
		     : "r"(pin), "r"(pout), "r"(flag)
		     : GP_CLOBBERS, X87_CLOBBERS, XMM_CLOBBERS, XMM_HI_CLOBBERS, K_CLOBBERS,
		       "memory", "cc");
}

static void hex(char *dst, const uint8_t *p, int n)
{
	for (int i = n - 1; i >= 0; i--)	/* most significant byte first */
		dst += sprintf(dst, "%02x", p[i]);
}

int main(void)
{
	static const char msg[] = "READY\n";
	uint64_t rng = 0x5eed0f5eed;
	int nvec, veclen, kbytes, avx512 = 0, bw = 0;
	unsigned long gsbase = 0x7e57000, gs_after = 0;
	char a[160], b[160];

	install_sigterm(SA_RESTART);
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		avx512 = 1;
		bw = __builtin_cpu_supports("avx512bw");
	} else if (!__builtin_cpu_supports("avx2")) {
		fail("setup: this CPU has neither AVX2 nor AVX-512F");
	}
	nvec = avx512 ? 32 : 16;
	veclen = avx512 ? 64 : 32;
	kbytes = bw ? 8 : 2;

	for (int i = 0; i < NGP; i++)
		in.gp[i] = splitmix64(&rng);
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 64; j += 8) {
			uint64_t w = splitmix64(&rng);
			memcpy(&in.vec[i][j], &w, 8);
		}
	for (int i = 0; i < 8; i++)
		in.k[i] = splitmix64(&rng);
	for (int i = 0; i < 8; i++) {
		/* a normal extended-precision number: explicit integer bit set */
		uint64_t mant = splitmix64(&rng) | (1ULL << 63);
		uint16_t se = (uint16_t)((0x3fff - 20 + i * 5) | (i & 1 ? 0x8000 : 0));
		memcpy(&in.x87[i][0], &mant, 8);
		memcpy(&in.x87[i][8], &se, 2);
	}
	in.fcw = FCW_TEST;
	in.mxcsr = MXCSR_TEST;
	in.fcw_def = 0x037f;
	in.mxcsr_def = 0x1f80;
	in.msg = msg;
	in.msglen = sizeof(msg) - 1;
	memset(&out, 0, sizeof(out));

	SYS(syscall(SYS_arch_prctl, ARCH_SET_GS, gsbase));
	note("registers: %s, %d vector registers, %d-bit masks",
	     avx512 ? "AVX-512" : "AVX2", nvec, avx512 ? kbytes * 8 : 0);

	/* prints READY itself, from inside the asm block */
	if (bw)
		run_avx512bw();
	else if (avx512)
		run_avx512f();
	else
		run_avx2();

	if (!got_sigterm)
		fail("the spin loop ended without SIGTERM");
	for (int i = 0; i < NGP; i++)
		if (out.gp[i] != in.gp[i])
			fail("%s: want %016llx, got %016llx", gp_names[i],
			     (unsigned long long)in.gp[i], (unsigned long long)out.gp[i]);
	for (int i = 0; i < nvec; i++)
		if (memcmp(out.vec[i], in.vec[i], veclen)) {
			hex(a, in.vec[i], veclen);
			hex(b, out.vec[i], veclen);
			fail("%smm%d: want %s, got %s", avx512 ? "z" : "y", i, a, b);
		}
	for (int i = 0; avx512 && i < 8; i++)
		if (memcmp(&out.k[i], &in.k[i], kbytes)) {
			hex(a, (uint8_t *)&in.k[i], kbytes);
			hex(b, (uint8_t *)&out.k[i], kbytes);
			fail("k%d: want %s, got %s", i, a, b);
		}
	for (int i = 0; i < 8; i++)
		if (memcmp(out.x87[i], in.x87[i], 10)) {
			hex(a, in.x87[i], 10);
			hex(b, out.x87[i], 10);
			fail("x87 st(%d): want %s, got %s", i, a, b);
		}
	CHECK_EQ_U64("x87 control word", FCW_TEST, out.fcw);
	CHECK_EQ_U64("MXCSR", MXCSR_TEST, out.mxcsr);
	SYS(syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_after));
	CHECK_EQ_U64("gs base", gsbase, gs_after);
	pass();
}
