% rebase('layout.tpl', title=title)
<h2>{{title}}</h2>
<div class="error">{{message}}</div>
% if confirm:
<form action="{{confirm}}" method="post"><div class="actions"><input type="submit" value="Do it"></div></form>
% end
<p><a href="/public">Back to the public timeline</a></p>
