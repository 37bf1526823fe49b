// oneDNN's C API, from Debian's libdnnl-dev.
#include <dnnl.h>
