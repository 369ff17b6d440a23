/* The HDF5 C API (Debian: libhdf5-dev, the serial build) and the values Swift cannot import.
 *
 * HDF5's type, property-list and flag "constants" are macros over globals that need H5open() first
 * (H5T_NATIVE_FLOAT is `(H5open(), H5T_NATIVE_FLOAT_g)`); Swift imports neither form, so each one
 * is a small inline function here. The calls whose signature differs between HDF5 1.10, 1.12 and
 * 1.14 (link info, object info) are wrapped too, so the Swift side compiles against any of them. */
#ifndef SDLSTM_CHDF5_SHIM_H
#define SDLSTM_CHDF5_SHIM_H

#if __has_include(<hdf5/serial/hdf5.h>)
#include <hdf5/serial/hdf5.h>
#else
#include <hdf5.h>
#endif
#include <string.h>

static inline hid_t sdl_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t sdl_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t sdl_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t sdl_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t sdl_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t sdl_h5t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t sdl_h5t_c_s1(void) { return H5T_C_S1; }
/* Used by the tests to write files with the wrong types (variable-length strings among them). */
static inline size_t sdl_h5t_variable(void) { return H5T_VARIABLE; }
static inline hid_t sdl_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t sdl_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t sdl_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t sdl_h5t_std_i32le(void) { return H5T_STD_I32LE; }

static inline hid_t sdl_h5p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t sdl_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t sdl_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t sdl_h5p_group_create(void) { return H5P_GROUP_CREATE; }

static inline unsigned sdl_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned sdl_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned sdl_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }

/* The link's type (H5L_TYPE_HARD, _SOFT, _EXTERNAL, ...), or -1 if there is no such link. */
static inline int sdl_h5_link_type(hid_t loc, const char *name) {
    H5L_info_t info;
    if (H5Lget_info(loc, name, &info, H5P_DEFAULT) < 0) return -1;
    return (int)info.type;
}

/* A file-access property list for checkpoints: no file locking where the library supports turning
 * it off (checkpoints are written to a private temporary file and renamed, so locks protect nothing,
 * and flock fails on some network filesystems). */
static inline herr_t sdl_h5_no_file_locking(hid_t fapl) {
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
    return H5Pset_file_locking(fapl, 0, 1);
#else
    (void)fapl;
    return 0;
#endif
}

/* 1 if the object keeps its attributes in HDF5's dense storage (a fractal heap and a B-tree outside
 * the object header), 0 if in the object header (compact), -1 on error. */
static inline int sdl_h5_attributes_dense(hid_t obj) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_native_info_t info;
    if (H5Oget_native_info(obj, &info, H5O_NATIVE_INFO_META_SIZE) < 0) return -1;
#else
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_META_SIZE) < 0) return -1;
#endif
    return info.meta_size.attr.index_size > 0 || info.meta_size.attr.heap_size > 0;
}

/* HDF5's automatic error printing: switched off around each checkpoint call, then restored, so a
 * host program that uses HDF5 itself keeps its own setting. */
typedef struct sdl_h5_quiet {
    H5E_auto2_t func;
    void *data;
} sdl_h5_quiet;

static inline sdl_h5_quiet sdl_h5_quiet_begin(void) {
    sdl_h5_quiet q = {0, 0};
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static inline void sdl_h5_quiet_end(sdl_h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.func, q.data); }

static inline herr_t sdl_h5_walk_keep_last(unsigned n, const H5E_error2_t *err, void *out) {
    (void)n;
    if (err && err->desc && err->desc[0]) {
        strncpy((char *)out, err->desc, 511);
        ((char *)out)[511] = '\0';
    }
    return 0;
}

/* The innermost description on this thread's HDF5 error stack ("" if none), then clears the stack.
 * buf must hold 512 bytes. */
static inline void sdl_h5_last_error(char *buf) {
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, sdl_h5_walk_keep_last, buf);
    H5Eclear2(H5E_DEFAULT);
}

/* Open files and objects in them (groups, datasets, attributes, committed types) in this process:
 * tests compare it before and after a checkpoint call to find leaks. */
static inline long sdl_h5_open_ids(void) {
    H5open();
    ssize_t n = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
    return n < 0 ? -1 : (long)n;
}

#endif
