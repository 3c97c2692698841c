# Reference files written by real torch.save / SummaryWriter, for typetune's tests.
import torch, os, shutil, glob
from torch import nn
O = os.environ['OUT']
torch.manual_seed(0)
ar = lambda n, dt: (torch.arange(n) - n // 2).to(dt)
torch.save({
    'f32': torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
    'f64': torch.tensor([3.141592653589793, -1e300], dtype=torch.float64),
    'f16': torch.tensor([[1.0], [-2.5]], dtype=torch.float16),
    'bf16': torch.tensor([1.0, 0.0, -3.0], dtype=torch.bfloat16),
    'i64': torch.tensor(64),
    'i32': torch.tensor([[-1, 2**31 - 1], [-2**31, 0]], dtype=torch.int32),
    'i16': ar(3, torch.int16), 'i8': torch.tensor([-128, 127], dtype=torch.int8),
    'u8': torch.tensor([0, 255], dtype=torch.uint8), 'bool': torch.tensor([True, False, True]),
    'empty': torch.zeros(0, 5),
}, f'{O}/torch-dtypes.bin')
torch.save({f'layers.{i}.weight': torch.full((2,), float(i)) for i in range(20)}, f'{O}/torch-many.bin')
x = torch.arange(10.)
torch.save({'slice': x[2:5], 'param': nn.Parameter(torch.ones(2, 2))}, f'{O}/torch-views.bin')
torch.save({'transposed': torch.arange(6.).reshape(2, 3).t()}, f'{O}/torch-noncontiguous.bin')
# A module built like pyreft's DireftIntervention (pyvene buffers, orthogonal-parametrised
# rotate_layer, learned_source in bf16 as pyreft's default dtype), saved through nn.Module.state_dict()
class LRR(nn.Module):
    def __init__(s, n, m):
        super().__init__(); s.weight = nn.Parameter(torch.empty(n, m)); nn.init.orthogonal_(s.weight)
class Direft(nn.Module):
    def __init__(s, H, r):
        super().__init__()
        s.register_buffer('embed_dim', torch.tensor(H)); s.register_buffer('interchange_dim', torch.tensor(H))
        s.rotate_layer = nn.utils.parametrizations.orthogonal(LRR(H, r))
        s.learned_source = nn.Linear(H, r).to(torch.bfloat16)
torch.save(Direft(8, 2).state_dict(), f'{O}/torch-direft-state.bin')
from torch.utils.tensorboard import SummaryWriter
w = SummaryWriter('/tmp/tbref')
w.add_scalar('train/loss', 1.5, 3, walltime=1700000123.5)
w.add_scalar('lr', 0.001, 4, walltime=1700000124.0)
w.close()
shutil.copy(glob.glob('/tmp/tbref/events.out.tfevents.*')[0], f'{O}/torch-summarywriter.tfevents')
for f in sorted(os.listdir(O)): print(f, os.path.getsize(f'{O}/{f}'))
print(torch.__version__)
