#pragma once
// 2x2 max-pool, stride 2.
#include <string>

#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/ops/ops.hpp"

namespace unetsrnn {

template <class Dev = Cpu>
class MaxPool2 {
 public:
  void init(Rng&) {}
  void collect(ParamList<Dev>&, const std::string&) {}
  static Shape output_shape(Shape in) { return Shape{in.n, in.c, in.h / 2, in.w / 2}; }
  void forward(CView<Dev> x, View<Dev> y) {
    x_ = x;
    y_ = y;
    ops::maxpool2x2_forward<Dev>(x, y);
  }
  void backward(View<Dev> dy, View<Dev> dx, bool accumulate) {
    if (dx.data) ops::maxpool2x2_backward<Dev>(x_, y_, dy, dx, accumulate);
  }

 private:
  CView<Dev> x_, y_;
};

}  // namespace unetsrnn
