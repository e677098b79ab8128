// libFuzzer target: the .npy parser rejects any malformed file cleanly and round-trips any valid one.
#include "decay/Support/Npy.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  decay::npy::Array array;
  std::string error;
  if (!decay::npy::parseNpy(data, size, array, error))
    return 0;
  std::string bytes = decay::npy::serializeNpy(array);
  decay::npy::Array again;
  if (!decay::npy::parseNpy(reinterpret_cast<const unsigned char *>(bytes.data()),
                            bytes.size(), again, error) ||
      again.shape != array.shape || again.bytes != array.bytes)
    std::abort();
  return 0;
}
