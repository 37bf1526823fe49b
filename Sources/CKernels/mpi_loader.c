// Open MPI, loaded at run time when the process was started by mpirun (as oneDNN is loaded): the build and the
// single-process path have no MPI dependency. Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM...)
// are the addresses of exported objects, so they are looked up by name too.
#include "CKernels.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*init_fn)(int *, char ***);
typedef int (*initialized_fn)(int *);
typedef int (*comm_int_fn)(void *, int *);
typedef int (*allreduce_fn)(const void *, void *, int, void *, void *, void *);
typedef int (*barrier_fn)(void *);
typedef int (*abort_fn)(void *, int);
typedef int (*finalize_fn)(void);

static struct {
    void *lib;
    init_fn init;
    initialized_fn initialized;
    comm_int_fn rank, size;
    allreduce_fn allreduce;
    barrier_fn barrier;
    abort_fn abort;
    finalize_fn finalize;
    void *world, *f32, *f64, *sum, *in_place;
    int rank_value, size_value;
} mpi;

static char load_error[512];

const char *pk_mpi_error(void) { return load_error; }

int pk_mpi_launched(void) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s) s = getenv("PMIX_SIZE");
    if (!s) s = getenv("PMI_SIZE");
    return s ? atoi(s) : 0;
}

int pk_mpi_init(void) {
    if (mpi.lib) return 0;
    const char *names[] = {"libmpi.so.40", "libmpi.so.12", "libmpi.so"};
    for (size_t i = 0; i < sizeof names / sizeof *names && !mpi.lib; i++) mpi.lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!mpi.lib) {
        snprintf(load_error, sizeof load_error, "cannot load the MPI library (libmpi.so.40 from Open MPI: apt-get install openmpi-bin): %s", dlerror());
        return -1;
    }
#define SYM(field, name)                                                                                               \
    if (!(*(void **)&mpi.field = dlsym(mpi.lib, name))) {                                                             \
        snprintf(load_error, sizeof load_error, "the MPI library lacks %s (Open MPI is supported)", name);           \
        return -1;                                                                                                     \
    }
    SYM(init, "MPI_Init")
    SYM(initialized, "MPI_Initialized")
    SYM(rank, "MPI_Comm_rank")
    SYM(size, "MPI_Comm_size")
    SYM(allreduce, "MPI_Allreduce")
    SYM(barrier, "MPI_Barrier")
    SYM(abort, "MPI_Abort")
    SYM(finalize, "MPI_Finalize")
    SYM(world, "ompi_mpi_comm_world")
    SYM(f32, "ompi_mpi_float")
    SYM(f64, "ompi_mpi_double")
    SYM(sum, "ompi_mpi_op_sum")
#undef SYM
    mpi.in_place = (void *)1;   // Open MPI's MPI_IN_PLACE
    int already = 0;
    mpi.initialized(&already);
    if (!already && mpi.init(NULL, NULL) != 0) {
        snprintf(load_error, sizeof load_error, "MPI_Init failed");
        return -1;
    }
    mpi.rank(mpi.world, &mpi.rank_value);
    mpi.size(mpi.world, &mpi.size_value);
    return 0;
}

int pk_mpi_rank(void) { return mpi.rank_value; }
int pk_mpi_size(void) { return mpi.size_value; }

int pk_mpi_allreduce_f32(float *buf, size_t count) {
    for (size_t done = 0; done < count;) {
        const size_t n = count - done > (1u << 30) ? (1u << 30) : count - done;
        if (mpi.allreduce(mpi.in_place, buf + done, (int)n, mpi.f32, mpi.sum, mpi.world) != 0) return -1;
        done += n;
    }
    return 0;
}

int pk_mpi_allreduce_f64(double *buf, size_t count) {
    return mpi.allreduce(mpi.in_place, buf, (int)count, mpi.f64, mpi.sum, mpi.world) != 0 ? -1 : 0;
}

int pk_mpi_barrier(void) { return mpi.barrier(mpi.world) != 0 ? -1 : 0; }

void pk_mpi_abort(int code) {
    if (mpi.abort) mpi.abort(mpi.world, code);
    exit(code);
}

void pk_mpi_finalize(void) {
    if (mpi.finalize) mpi.finalize();
}
