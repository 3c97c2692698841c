// The table of device primitives (primitives.h) and the program interpreter.
#include "primitives.h"
#include <cstring>

namespace tt {

static std::vector<Primitive>& table() {
  static std::vector<Primitive> t;  // function-local: safe from static-initialisation order
  return t;
}

int registerPrimitive(const char* name, int nargs, PrimitiveFn run) {
  for (const Primitive& p : table()) {
    if (std::strcmp(p.name, name) == 0) throw std::logic_error(std::string("primitive '") + name + "' registered twice");
  }
  table().push_back({name, nargs, run});
  return (int)table().size() - 1;
}

const std::vector<Primitive>& primitiveTable() { return table(); }

void runProgram(const double* program, size_t n) {
  const std::vector<Primitive>& t = table();
  size_t pos = 0;
  for (int step = 0; pos < n; step++) {
    const double idv = program[pos];
    if (idv < 0 || idv != std::floor(idv) || idv >= (double)t.size()) {
      throw std::runtime_error("program entry " + std::to_string(step) + " at word " + std::to_string(pos) + ": no primitive with id " + std::to_string(idv));
    }
    const Primitive& p = t[(size_t)idv];
    if (pos + 1 + (size_t)p.nargs > n) {
      throw std::runtime_error("program entry " + std::to_string(step) + " (" + p.name + "): needs " + std::to_string(p.nargs) + " arguments, the program ends first");
    }
    try {
      p.run(Args{program + pos + 1, p.name});
    } catch (const std::exception& e) {
      throw std::runtime_error("program entry " + std::to_string(step) + " (" + p.name + "): " + e.what());
    }
    pos += 1 + (size_t)p.nargs;
  }
}

}  // namespace tt
