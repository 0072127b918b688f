# Ablation (Rayhan, Galata and Cootes, BMVC 2020, Table 4): Wing loss's
# pose-based data balancing, which repeats the minority pose bins up to the
# largest one, instead of the paper's undersampling to the smallest.
_base_ = ['../aniso_res50_wflw.py']

train_dataloader = dict(sampler=dict(mode='oversample'))
