/* The C API: handles and -errno. */
#include <faultline/faultline.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    faultline_runtime_t rt;
    int rc = faultline_create(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "faultline_create: %s (%s)\n", strerror(-rc), faultline_last_error());
        return 1;
    }
    void* p;
    rc = faultline_map(rt, NULL, 1 << 20, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE, 0, "c-example", &p);
    if (rc < 0) {
        fprintf(stderr, "faultline_map: %s\n", strerror(-rc));
        return 1;
    }
    memset(p, 1, 1 << 20);
    faultline_region_stats st;
    faultline_get_region_stats(rt, p, &st);
    printf("c example: %zu KiB resident, %llu faults\n", st.amount_resident >> 10, (unsigned long long)st.zero_faults);
    faultline_destroy(rt);
    /* The handle is dead now: every call says so instead of crashing. */
    rc = faultline_unmap(rt, p, 1 << 20);
    printf("after destroy: faultline_unmap -> %s\n", rc == -EBADF ? "-EBADF" : "unexpected");
    return rc == -EBADF ? 0 : 1;
}
